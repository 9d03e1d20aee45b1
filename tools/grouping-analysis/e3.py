from ev import *
import pickle
def lcn(x, bs=0.6, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+1e-2)
def zoom(imgs, z, ox, oy, mirror):
    x=imgs[:,:,::-1] if mirror else imgs
    n=32; c=(n-1)/2
    # output pixel p maps to input c + (p-c)/z + o*n
    out=np.empty_like(x)
    for k in range(len(x)):
        out[k]=ndi.affine_transform(x[k], [1/z,1/z], offset=[c-c/z+oy*n, c-c/z+ox*n], order=1, mode='constant', cval=0)
    return out
Ss=pickle.load(open('S_lcn.pkl','rb'))
Sz={}
t0=time.time()
for lab,(idx,S) in Ss.items():
    imgs=T[idx]; base=std(lcn(imgs).reshape(len(idx),-1)); Z=S.copy()
    for z in [1.15,1.3,1.5]:
        for ox in [-0.1,0,0.1]:
            for oy in [-0.1,0,0.1]:
                for m in [False,True]:
                    v=std(lcn(zoom(imgs,z,ox,oy,m)).reshape(len(idx),-1)); Z=np.maximum(Z, base@v.T)
    Z=np.maximum(Z,Z.T); Sz[lab]=(idx,Z)
print('zoom variants', time.time()-t0); sweep(Sz,[0.9,0.875,0.85,0.825,0.8])
pickle.dump(Sz,open('S_zoom.pkl','wb'))
