from ev import *
import pickle,sys
def lcn(x, bs=0.6, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+1e-2)
bs=float(sys.argv[1]); ls=float(sys.argv[2])
t0=time.time(); S=maxsim(lambda x: lcn(x,bs,ls), T); print('full', time.time()-t0)
np.save(f'F_{bs}_{ls}.npy', S)
