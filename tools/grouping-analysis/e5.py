from ev import *
import pickle,sys
def lcn(x, bs=0.6, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+1e-2)
def grad(x, bs=1.0, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    gx=ndi.sobel(x,2); gy=ndi.sobel(x,1); m=np.sqrt(ndi.gaussian_filter(gx*gx+gy*gy,(0,ls,ls))+1e-3)
    return np.concatenate([gx/m,gy/m],axis=1)
def zoom(imgs, z, ox, oy, mirror):
    x=imgs[:,:,::-1] if mirror else imgs
    n=32; c=(n-1)/2; out=np.empty_like(x)
    for k in range(len(x)):
        out[k]=ndi.affine_transform(x[k], [1/z,1/z], offset=[c-c/z+oy*n, c-c/z+ox*n], order=1, mode='constant', cval=0)
    return out
kind=sys.argv[1]; bs=float(sys.argv[2]); ls=float(sys.argv[3]); zooms=[float(z) for z in sys.argv[4].split(',')] if len(sys.argv)>4 and sys.argv[4] else []
fn={'lcn':lcn,'grad':grad}[kind]; f=lambda x: fn(x,bs,ls)
Ss=run(f'{kind} bs{bs} ls{ls}', f, [0.95,0.9,0.875,0.85,0.825,0.8,0.75])
if zooms:
    Sz={}
    for lab,(idx,S) in Ss.items():
        imgs=T[idx]; base=std(f(imgs).reshape(len(idx),-1)); Z=S.copy()
        for z in zooms:
            for ox in [-0.1,0,0.1]:
                for oy in [-0.1,0,0.1]:
                    for m in [False,True]:
                        v=std(f(zoom(imgs,z,ox,oy,m)).reshape(len(idx),-1)); Z=np.maximum(Z, base@v.T)
        Sz[lab]=(idx,np.maximum(Z,Z.T))
    print('with zooms',zooms); sweep(Sz,[0.95,0.9,0.875,0.85,0.825,0.8,0.75]); Ss=Sz
pickle.dump(Ss,open(f'S_{kind}_{bs}_{ls}_{len(zooms)}.pkl','wb'))
