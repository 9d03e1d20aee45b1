from ev import *
import pickle, sys
from PIL import Image
import sys; Ss=pickle.load(open(sys.argv[1],"rb")); pred=cc_at(Ss,float(sys.argv[2]))
for g in sys.argv[3:]:
    idx=np.where(ref==g)[0]; idx=sorted(idx,key=lambda i:pred[i])[:40]
    cols=10; rows=(len(idx)+cols-1)//cols; side=64
    S=np.zeros((rows*(side+10), cols*side))
    comps=sorted(set(pred[idx]))
    for k,i in enumerate(idx):
        r,c=divmod(k,cols); S[r*(side+10):r*(side+10)+side, c*side:(c+1)*side]=P[i]
        S[r*(side+10)+side+2:r*(side+10)+side+8, c*side+2:c*side+2+ (comps.index(pred[i])+1)*8]=1
    Image.fromarray((S*255).clip(0,255).astype(np.uint8)).resize((S.shape[1]*2,S.shape[0]*2)).save(f'comp_{g}.png')
